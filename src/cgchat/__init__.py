"""cgchat: find and talk about a CG studio's assets."""

__version__ = "0.1.0"
