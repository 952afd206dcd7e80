"""Real parts the tests share: git repositories, the daemon as a process, loopback fakes of GitHub and Slack."""
