# Rule 5: two kill(block=False) in a row queue two throws; G catches the
# first, blocks again, and receives the second.
import gevent
from gevent import GreenletExit

def body():
    print("G start")
    try:
        gevent.sleep(10)
    except GreenletExit:
        print("G caught exit 1")
    try:
        gevent.sleep(10)
    except GreenletExit:
        print("G caught exit 2")
    print("G end")

g = gevent.spawn(body)
gevent.sleep(0)
g.kill(block=False)
g.kill(block=False)
print("main queued two kills")
g.join()
print("main joined")
