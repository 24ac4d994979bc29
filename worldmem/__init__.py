"""worldmem: a geometry-grounded video world model with spatial, episodic and working memory."""

__version__ = "0.1.0"
