"""Tool calling through a web model that has no function-calling API of its own.

The model is told about the tools in a text protocol (prompt.py: Hermes/Qwen style ``<tool_call>``
blocks), and its reply is read back by an incremental parser (parser.py) that turns those blocks
into OpenAI tool calls, validated against each tool's JSON Schema and repaired where the intent is
clear (repair.py). toolset.py holds what the client asked for.
"""
