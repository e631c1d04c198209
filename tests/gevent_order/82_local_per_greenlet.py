# Needs local. Rule 10: a local holds one value per greenlet: a greenlet
# sees none of main's attributes, its writes do not show in main or in a
# sibling, and a subclass's __init__ runs once in each greenlet, the first
# time it touches the local (main: at construction).
# Dropping: a greenlet's values go when its links entry reaches the rawlink
# the local added at the greenlet's first access, not when the greenlet
# object dies. Main's join() on A was registered before A touched the
# local, so main returns from join() with A's value still alive; it is
# dropped when main blocks at sleep(0). C, whose death main does not wait
# for, has its value dropped in its links entry behind main's resume.
import gevent
from gevent.local import local

class Tracked:
    def __init__(self, name):
        self.name = name
    def __del__(self):
        print("dropped", self.name)

class MyLocal(local):
    def __init__(self, who):
        print("init in", who[0])
        self.n = 0

who = ["main"]
data = MyLocal(who)
data.value = Tracked("main's")

def body(name):
    who[0] = name
    print(name, "has value", hasattr(data, "value"), "n", data.n)
    data.value = Tracked(name + "'s")
    data.n += 1
    gevent.sleep(0)
    who[0] = name
    print(name, "sees", data.value.name, "n", data.n)

a = gevent.spawn(body, "A")
b = gevent.spawn(body, "B")
a.join()
who[0] = "main"
print("main joined A, sees", data.value.name, "n", data.n)
gevent.sleep(0)
print("main after sleep0")
b.join()
print("main joined B")
gevent.sleep(0)
print("main after sleep0")

def c_body():
    who[0] = "C"
    data.value = Tracked("C's")
    who[0] = "main"

c = gevent.spawn(c_body)
gevent.sleep(0)
print("main after C ran")
gevent.sleep(0)
print("main after sleep0, C dead", c.dead)
del data.value
print("main done")
