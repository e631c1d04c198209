# Rule 6: a Timeout(0) and a spawn_later(0) are both zero timers, served in
# the order they were started: here L starts before main's timeout is
# raised, because L's timer was started first.
import gevent
from gevent import Timeout

gevent.spawn_later(0, lambda: print("L start"))
t = Timeout.start_new(0)
try:
    gevent.sleep(10)
except Timeout:
    print("main timed out")
gevent.spawn_later(0, lambda: print("M start"))
t = Timeout.start_new(0)
try:
    gevent.sleep(10)
except Timeout:
    print("main timed out again")
gevent.sleep(0)
print("main after sleep0")
