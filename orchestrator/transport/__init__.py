"""Commands and bytes to a host: SSH over Paramiko (host keys as ssh(1) decides them,
ProxyJump), or this machine (`local`); shell quoting; push/pull by rsync over the same
connection, SFTP or copies; no-follow readers."""
