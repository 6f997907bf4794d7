"""Sync: push new or changed products to the external API, and receive them as one."""
