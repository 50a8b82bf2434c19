"""Routing: strategies plan (ordered candidates + a reason); the chat service executes the plan."""
