# Rule 7: a greenlet looping on sleep(0) keeps the callback queue non-empty
# forever, yet a zero timer still fires: the pass is cut short once 50
# callbacks ran and the 5 ms switch interval has passed. The loop has done
# dozens of sleep(0)s by then (a cut needs 50 callbacks in the pass).
import gevent

state = {"stop": False, "spins": 0}

def spinner():
    while not state["stop"]:
        state["spins"] += 1
        gevent.sleep(0)
    print("spinner stopped")

def stopper():
    print("timer greenlet runs")
    state["stop"] = True

s = gevent.spawn(spinner)
gevent.spawn_later(0, stopper)
s.join()
print("spins >= 40:", state["spins"] >= 40)
