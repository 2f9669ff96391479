from ide.paths import service_path

__all__ = ["service_path"]
