# Link kinds on success: link, link_value and rawlink fire in registration
# order within G's entry; link_exception is skipped.
import gevent

g = gevent.spawn(lambda: 1)
g.link_exception(lambda src: print("link_exception"))
g.link(lambda src: print("link"))
g.rawlink(lambda src: print("rawlink"))
g.link_value(lambda src: print("link_value"))
g.join()
print("main joined")
gevent.sleep(0)
print("main after sleep0")
