"""The Slack adapter: slack-bolt in Socket Mode or HTTP mode."""
