"""Services: the chat pipeline, authentication, billing and the usage writer."""
