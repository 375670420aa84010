"""Our FastAGI server and the call flows it routes to."""
