async def pump(iterator, sink):
    push = sink.push
    try:
        if not sink.closed:
            if hasattr(type(iterator), "__aiter__"):
                # The fast path: `async for` steps the iterator through its type's slot.
                async for item in iterator:
                    if push(item):
                        await sink.space()
                        if sink.closed:
                            break
            else:
                while True:
                    try:
                        item = await iterator.__anext__()
                    except StopAsyncIteration:
                        break
                    if push(item):
                        await sink.space()
                        if sink.closed:
                            break
    except BaseException as error:
        sink.fail(error)
        if not isinstance(error, Exception):
            raise
    else:
        sink.finish()
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None and sink.closed:
            await aclose()
