"""``python -m terraform_provider``: what the executable in the provider mirror runs."""

from terraform_provider.provider import run

run()
