"""What knows TorchServe but is not the handler: the launcher (a local
TorchServe), the HTTP client, the served-versus-local comparison and the
stream client's transport. The core (the package root) never imports this."""
