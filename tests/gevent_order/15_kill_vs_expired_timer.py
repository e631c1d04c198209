# Rule 4 (timer case): G sleeps 1 ms; main blocks the whole thread for
# 20 ms (no greenlet switch), so G's timer has expired but the loop has not
# looked at timers yet. The kill callback runs in the callback pass, before
# the timer phase, so G gets the exit inside its sleep and never resumes
# normally.
import time
import gevent
from gevent import GreenletExit

def body():
    print("G sleeps 1ms")
    try:
        gevent.sleep(0.001)
        print("G woke normally")
    except GreenletExit:
        print("G exit inside sleep")

g = gevent.spawn(body)
gevent.sleep(0)
time.sleep(0.02)
print("main kills")
g.kill(block=False)
g.join()
print("main joined")
