"""The clinician web app: server-rendered pages (Jinja2), sign-in and sign-out."""
