"""An SSH server gone wrong, written with Paramiko: it accepts the client, opens every
session channel, and then never answers the channel's request (RFC 4254 6.5: the
client asked for a reply), so a client that waits for the answer without a limit waits
for ever.  What it leaves unanswered is argv[2]:

- ``all``: every exec and subsystem request;
- ``sftp``: only the sftp subsystem; a command is run (``bash -c``, as this user, from
  argv[3], the home folder) and its output and exit status relayed, as sshd would.

``python mute_sshd.py HOST_KEY MODE HOME`` prints the port it listens on (127.0.0.1),
then serves until killed.
"""

import socket
import subprocess
import sys
import threading

import paramiko

NEVER = threading.Event()  # what an unanswered request waits on


def _pump(read, write, done=None) -> None:
    try:
        while True:
            data = read(65536)
            if not data:
                break
            write(data)
    except (OSError, EOFError, paramiko.SSHException):
        pass
    if done:
        done()


def run(chan, command: bytes, home: str) -> None:
    """COMMAND under bash, its stdin, stdout, stderr and exit status on CHAN."""
    proc = subprocess.Popen(
        ["bash", "-c", command.decode()],
        cwd=home,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    threading.Thread(target=_pump, args=(chan.recv, proc.stdin.write, proc.stdin.close), daemon=True).start()
    out = threading.Thread(target=_pump, args=(proc.stdout.read1, chan.sendall))
    err = threading.Thread(target=_pump, args=(proc.stderr.read1, chan.sendall_stderr))
    for t in (out, err):
        t.start()
    for t in (out, err):
        t.join()
    chan.send_exit_status(proc.wait())
    chan.close()


class Server(paramiko.ServerInterface):
    def __init__(self, mode: str, home: str):
        self.mode, self.home = mode, home

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel, command):
        if self.mode == "all":
            NEVER.wait()
        # started a moment later: the reply to the request goes out first
        threading.Timer(0.05, run, args=(channel, command, self.home)).start()
        return True

    def check_channel_subsystem_request(self, channel, name):
        NEVER.wait()
        return False


def main() -> None:
    key = paramiko.Ed25519Key.from_private_key_file(sys.argv[1])
    mode, home = sys.argv[2], sys.argv[3]
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        transport = paramiko.Transport(conn)
        transport.add_server_key(key)
        transport.start_server(server=Server(mode, home))


if __name__ == "__main__":
    main()
