"""The model proxy: OpenCode in a sandbox calls models through it (`proxy.py` routes and checks, `calls.py`
forwards). docs/model-proxy.md."""
