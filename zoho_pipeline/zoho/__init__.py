"""ZOHO Billing client: OAuth refresh + token cache, HTTP, envelope, errors, rate limiter. No database, no Dagster.

from zoho_pipeline.zoho.client import ZohoClient
from zoho_pipeline.zoho.config import ZohoConfig
from zoho_pipeline.zoho.errors import ZohoError
"""
