"""Authentication: Cognito JWT verification, framework-independent (see ``cognito``)."""

from cgchat.auth.cognito import ANONYMOUS, AuthError, CognitoVerifier, Principal, bearer_token

__all__ = ["ANONYMOUS", "AuthError", "CognitoVerifier", "Principal", "bearer_token"]
