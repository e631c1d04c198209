# Rule 4: G is blocked in H.join(); H finishes and its links entry (which
# wakes G) is queued before main's kill. G first returns from join and runs
# to its next blocking point; the kill is raised there.
import gevent
from gevent import GreenletExit

def h():
    print("H runs")

def g_body():
    print("G joins H")
    hh.join()
    print("G joined H")
    try:
        gevent.sleep(0)
        print("G not killed")
    except GreenletExit:
        print("G exit after join")

gg = gevent.spawn(g_body)
hh = gevent.spawn(h)
gevent.sleep(0)
print("main kills G")
gg.kill(block=False)
gg.join()
print("main joined G")
