"""Stand-in for the `oxenc` Python module (bt-encoding only), for session-storage-server's
network-tests.  Same behaviour as oxenc's bindings: bt_serialize takes bytes/str/int/list/tuple/
dict (str keys or bytes keys, sorted on output); bt_deserialize returns bytes for strings, int,
list and dict with bytes keys."""

__all__ = ["bt_deserialize", "bt_serialize"]


def bt_serialize(val) -> bytes:
    out = []
    _ser(val, out)
    return b"".join(out)


def _ser(v, out):
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, int):
        out.append(b"i%de" % v)
    elif isinstance(v, (bytes, bytearray, memoryview)):
        v = bytes(v)
        out.append(b"%d:" % len(v))
        out.append(v)
    elif isinstance(v, str):
        _ser(v.encode(), out)
    elif isinstance(v, (list, tuple)):
        out.append(b"l")
        for x in v:
            _ser(x, out)
        out.append(b"e")
    elif isinstance(v, dict):
        items = sorted(((k.encode() if isinstance(k, str) else bytes(k)), x) for k, x in v.items())
        out.append(b"d")
        for k, x in items:
            _ser(k, out)
            _ser(x, out)
        out.append(b"e")
    else:
        raise TypeError(f"cannot bt-serialize {type(v).__name__}")


def bt_deserialize(data):
    if isinstance(data, str):
        data = data.encode()
    data = bytes(data)
    val, pos = _de(data, 0)
    if pos != len(data):
        raise ValueError("bt_deserialize: trailing data")
    return val


def _de(d, i):
    c = d[i : i + 1]
    if c == b"i":
        j = d.index(b"e", i)
        return int(d[i + 1 : j]), j + 1
    if c == b"l":
        i += 1
        lst = []
        while d[i : i + 1] != b"e":
            x, i = _de(d, i)
            lst.append(x)
        return lst, i + 1
    if c == b"d":
        i += 1
        dct = {}
        while d[i : i + 1] != b"e":
            k, i = _de(d, i)
            if not isinstance(k, bytes):
                raise ValueError("bt_deserialize: dict key is not a string")
            dct[k], i = _de(d, i)
        return dct, i + 1
    if c.isdigit():
        j = d.index(b":", i)
        n = int(d[i:j])
        if j + 1 + n > len(d):
            raise ValueError("bt_deserialize: truncated string")
        return d[j + 1 : j + 1 + n], j + 1 + n
    raise ValueError(f"bt_deserialize: bad token at {i}")
