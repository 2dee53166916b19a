"""``python -m floe_cdc.terraform``: what the executable in the provider mirror runs."""

from floe_cdc.terraform.provider import run

run()
