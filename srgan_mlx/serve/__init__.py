"""``srgan-mlx serve``: the local web page and its HTTP API, the job queue and the page's files (``web/``)."""
