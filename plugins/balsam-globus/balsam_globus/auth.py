"""The Transfer API client of a site, authenticated from its options.

Two ways, both without a browser: the agent's own app identity (client credentials of a confidential
app registered in Globus Auth), or a refresh token stored for a user, refreshed by the app.
"""

from __future__ import annotations

import globus_sdk
from globus_sdk.scopes import TransferScopes
from globus_sdk.transport import RetryConfig

from balsam_globus.options import GlobusOptions


def make_authorizer(options: GlobusOptions) -> globus_sdk.authorizers.GlobusAuthorizer:
    """A renewing authorizer: refresh token when one is configured, else client credentials."""
    if options.refresh_token:
        login_client: globus_sdk.AuthLoginClient
        if options.client_secret:
            login_client = globus_sdk.ConfidentialAppAuthClient(options.client_id, options.client_secret)
        else:
            login_client = globus_sdk.NativeAppAuthClient(options.client_id)
        return globus_sdk.RefreshTokenAuthorizer(options.refresh_token, login_client)
    app = globus_sdk.ConfidentialAppAuthClient(options.client_id, options.client_secret)
    return globus_sdk.ClientCredentialsAuthorizer(app, TransferScopes.all)


def make_transfer_client(options: GlobusOptions) -> globus_sdk.TransferClient:
    """A Transfer API client with the site's authorizer and its retry budget for API calls."""
    return globus_sdk.TransferClient(
        authorizer=make_authorizer(options),
        app_name="balsam-globus",
        retry_config=RetryConfig(max_retries=options.api_retries),
    )
