# Rules 3, 5: a kill(block=False) is caught and G blocks again; main then
# does a blocking kill, which delivers a second exit and returns as soon as
# G died, before G's link fires.
import gevent
from gevent import GreenletExit

def body():
    for i in (1, 2):
        try:
            gevent.sleep(10)
        except GreenletExit:
            print("G caught exit", i)
    print("G end")

g = gevent.spawn(body)
g.link(lambda src: print("link G"))
gevent.sleep(0)
g.kill(block=False)
gevent.sleep(0)
print("main after sleep0")
g.kill()
print("main after blocking kill")
gevent.sleep(0)
print("main after second sleep0")
