# Link kinds on failure: link, link_exception and rawlink fire in
# registration order; link_value is skipped.
import gevent

gevent.get_hub().exception_stream = None

def body():
    raise ValueError("boom")

g = gevent.spawn(body)
g.link_value(lambda src: print("link_value"))
g.link_exception(lambda src: print("link_exception"))
g.rawlink(lambda src: print("rawlink"))
g.link(lambda src: print("link"))
g.join()
print("main joined, exception:", type(g.exception).__name__)
gevent.sleep(0)
print("main after sleep0")
