"""Operating a TorchServe: the API client (api), its command line (cli, `python -m serving.client`)."""
