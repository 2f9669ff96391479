"""The plumbing both of the platform's streaming proxies share (the workspace proxy in `ide/` and the model
proxy in `model_proxy/`): the HTTP/1.1 upstream client, one pooled httpx client per event loop, the header
sets, and relaying a response while watching for the client to go. Also `precompressed.py`, gzip variants
of static files beside them (the workspace proxy serves them, the tools installer writes them). No Django
and no models here."""
