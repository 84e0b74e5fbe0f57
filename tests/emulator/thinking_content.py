"""What the 2026 thinking scenarios say, shared with the tests that check it."""

# gpt-5 thinking: each thought's summary comes first, then its content grows.
THOUGHTS_2026 = ({"summary": "Weighing the greeting", "content": "A friendly hello; keep it short."},
                 {"summary": "Checking the tone", "content": "Warm, with 你好 and one emoji 🙂."})
RECAP = "Thought for 8s"
STATUS_TEXTS = ("Thinking", "Thought for 8s")
ANALYSIS = "The user says hi. Plan: greet back briefly, 你好 included."
AUTO_ROUTED = "gpt-5-6-t-mini"  # where the server routes `auto` + `reason` today ([A], spec 1.2)
