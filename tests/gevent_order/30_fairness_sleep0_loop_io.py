# Rule 7: a sleep(0) loop cannot starve I/O either: R blocks reading a
# socket, the spinner writes to the other end and keeps spinning; the read
# completes once a pass is cut short and the loop polls. Needs green I/O.
import gevent
from gevent import socket

state = {"stop": False, "spins": 0}
left, right = socket.socketpair()

def reader():
    print("R waits for data")
    data = right.recv(16)
    print("R got", data.decode())
    state["stop"] = True

def spinner():
    left.send(b"ping")
    print("S sent")
    while not state["stop"]:
        state["spins"] += 1
        gevent.sleep(0)
    print("S stopped")

r = gevent.spawn(reader)
s = gevent.spawn(spinner)
gevent.joinall([r, s])
print("spins >= 40:", state["spins"] >= 40)
