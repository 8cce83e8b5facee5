"""Make and keep Tencent Cloud Lighthouse custom images (CreateBlueprint) from an SCF function."""

__version__ = "0.1.0"
