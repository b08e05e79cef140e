"""vlaworks: vision-language models turned into robot policies, from one core."""

__version__ = "0.1.0"
