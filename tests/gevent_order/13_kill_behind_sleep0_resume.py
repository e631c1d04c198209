# Rule 4: G's sleep(0) resume is queued before main's kill, so G first
# resumes and runs to its next blocking point (the second sleep(0)); the
# GreenletExit is raised there.
import gevent
from gevent import GreenletExit

def body():
    print("G start")
    gevent.sleep(0)
    print("G resumed")
    try:
        gevent.sleep(0)
        print("G not killed")
    except GreenletExit:
        print("G exit at second sleep0")

g = gevent.spawn(body)
gevent.sleep(0)
print("main kills")
g.kill(block=False)
g.join()
print("main joined")
