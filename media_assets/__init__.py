"""media-assets: web pages and videos, given as URLs, into one searchable index."""
