"""The model providers the control plane holds keys for (`providers.py`) and the wire formats they speak
(`wires.py`). No models here: sessions and sandboxes read it to configure OpenCode, the model proxy to
forward its calls."""
