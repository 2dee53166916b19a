import logging

from floe_cdc.core.secrets import SecretMaskingFilter, mask, register_secret


def test_registered_secrets_and_uri_credentials_are_masked():
    register_secret("hunter2-password")
    assert "hunter2-password" not in mask("connecting with hunter2-password")
    assert mask("postgresql://floe:pw@localhost:5432/db") == "postgresql://floe:********@localhost:5432/db"


def test_logging_filter_masks_formatted_message(caplog):
    register_secret("another-s3cret")
    logger = logging.getLogger("floe.test.secrets")
    logger.addFilter(SecretMaskingFilter())
    with caplog.at_level(logging.INFO, logger="floe.test.secrets"):
        logger.info("config %s", {"password": "another-s3cret"})
    assert "another-s3cret" not in caplog.text
    assert "********" in caplog.text
