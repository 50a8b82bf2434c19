"""The HTTP shell: route table, handlers that parse -> call one service -> render, SSE writer."""
