# Rule 5: G catches the first exit and returns; the second queued kill
# finds it dead and does nothing: links fire once, and the value is the
# first GreenletExit's return value.
import gevent
from gevent import GreenletExit

def body():
    try:
        gevent.sleep(10)
    except GreenletExit:
        print("G caught exit 1, returns")
        return "survived"

g = gevent.spawn(body)
g.link(lambda src: print("link G, value", src.value))
gevent.sleep(0)
g.kill(block=False)
g.kill(block=False)
g.join()
print("main joined, value", g.value)
gevent.sleep(0)
print("main after sleep0")
