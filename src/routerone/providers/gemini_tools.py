"""OpenAI `tools`/`tool_choice` (and the deprecated `functions`/`function_call`) -> Gemini
`tools[].functionDeclarations` and `toolConfig.functionCallingConfig`.

- function tools -> `{name, description, parameters}`, parameters converted by `gemini_jsonschema`
  (a parameter schema without properties is omitted: Gemini rejects an OBJECT with none);
  `strict` has no equivalent (dropped); `custom` tools -> 400.
- `tool_choice`: auto -> AUTO, none -> NONE, required -> ANY, `{function: {name}}` -> ANY +
  `allowedFunctionNames: [name]`, `allowed_tools` -> ANY + the names (mode required) or AUTO (mode
  auto); `parallel_tool_calls` has no switch: true is the default, false (with tools) is refused
  in gemini_request.
"""
from __future__ import annotations

from ..errors import InvalidRequest, UnsupportedParameter
from .gemini_jsonschema import to_gemini_schema

__all__ = ["tools", "tool_config"]


def _function_tools(body: dict) -> list[dict]:
    if body.get("tools"):
        return body["tools"]
    return [{"type": "function", "function": f} for f in body.get("functions") or () if isinstance(f, dict)]


def tools(body: dict) -> tuple[list[dict], list[str]]:
    decls: list[dict] = []
    for i, tool in enumerate(_function_tools(body)):
        if tool.get("type") != "function":
            raise UnsupportedParameter(f"'tools[{i}]': only function tools are supported by Gemini",
                                       param=f"tools[{i}].type")
        fn = tool["function"]
        decl: dict = {"name": fn["name"]}
        if fn.get("description"):
            decl["description"] = fn["description"]
        if fn.get("parameters"):
            schema = to_gemini_schema(fn["parameters"], param=f"tools[{i}].function.parameters")
            if schema.get("properties"):   # Gemini rejects an OBJECT with no properties
                decl["parameters"] = schema
        decls.append(decl)
    return ([{"functionDeclarations": decls}] if decls else []), [d["name"] for d in decls]


def tool_config(body: dict, names: list[str]) -> dict | None:
    choice = body.get("tool_choice")
    if choice is None and isinstance(body.get("function_call"), (str, dict)):
        legacy = body["function_call"]
        choice = legacy if isinstance(legacy, str) else {"type": "function", "function": legacy}
    if choice is None or (not names and choice in ("none", "auto")):
        return None
    if not names:
        raise InvalidRequest("'tool_choice' needs 'tools'", param="tool_choice")
    modes = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
    if isinstance(choice, str) and choice in modes:
        return {"functionCallingConfig": {"mode": modes[choice]}}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if name not in names:
            raise InvalidRequest(f"'tool_choice.function.name' {name!r} is not one of the tools",
                                 param="tool_choice.function.name")
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools") or {}
        picked = [t.get("function", {}).get("name") for t in allowed.get("tools") or () if isinstance(t, dict)]
        picked = [n for n in picked if n in names]
        if not picked:
            raise InvalidRequest("'tool_choice.allowed_tools.tools' names none of the tools",
                                 param="tool_choice.allowed_tools.tools")
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": picked}
                if allowed.get("mode") == "required" else {"mode": "AUTO"}}
    raise UnsupportedParameter("'tool_choice' of this kind is not supported by Gemini", param="tool_choice")
