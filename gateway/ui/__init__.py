"""The dashboard at /ui: server-rendered pages over the read API's data, behind a Cognito login."""
