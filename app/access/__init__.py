"""Identity and access: who a request is (API keys, FLOWLOG_TOKENS, console sessions, single
sign-on) and what their role lets them do (docs/access.md)."""
