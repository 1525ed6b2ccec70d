"""Drives a cstore server with redis-py, the most used Python client, as an application would.

Run by tests/server_clients.rs for every strategy, over RESP2 and RESP3 (redis-py negotiates
RESP3 with HELLO 3, and parses replies differently in each). Exits non-zero with a traceback
on the first reply redis-py does not give as it would with Redis; prints "ok" otherwise.
"""

import argparse

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def check_commands(client: redis.Redis) -> None:
    assert client.ping() is True
    assert client.set("greeting", "hello") is True
    assert client.get("greeting") == "hello"
    assert client.get("missing") is None
    assert client.set("greeting", "other", nx=True) is None
    assert client.set("greeting", "again", xx=True, get=True) == "hello"
    assert client.setnx("fresh", "1") is True
    assert client.setnx("fresh", "2") is False
    assert client.incr("counter") == 1
    assert client.incrby("counter", 41) == 42
    assert client.decr("counter") == 41
    assert client.incrbyfloat("float", 2.5) == 2.5
    assert client.mset({"a": "1", "b": "2"}) is True
    assert client.mget("a", "b", "missing") == ["1", "2", None]
    assert client.append("a", "23") == 3
    assert client.strlen("a") == 3
    assert client.getrange("greeting", 0, 2) == "aga"
    assert client.setrange("greeting", 0, "AG") == 5
    assert client.get("greeting") == "AGain"
    assert client.expire("a", 100) is True
    assert 0 < client.ttl("a") <= 100
    assert 0 < client.pttl("a") <= 100_000
    assert client.persist("a") is True
    assert client.ttl("a") == -1
    assert client.getex("b", ex=50) == "2"
    assert 0 < client.ttl("b") <= 50
    assert client.getdel("b") == "2"
    assert client.exists("a", "a", "b") == 2
    assert client.type("a") == "string"
    assert client.delete("a", "missing") == 1


def check_pipeline_and_scan(client: redis.Redis) -> None:
    keys = {f"scan:{i}" for i in range(100)}
    with client.pipeline(transaction=False) as pipe:
        for key in sorted(keys):
            pipe.set(key, key)
        assert pipe.execute() == [True] * len(keys)
    assert set(client.scan_iter(match="scan:*", count=7)) == keys
    assert sorted(client.keys("scan:1*")) == sorted(k for k in keys if k.startswith("scan:1"))
    assert client.dbsize() >= len(keys)


def check_transactions(client: redis.Redis) -> None:
    # pipeline() is transactional by default: MULTI ... EXEC in one round trip.
    with client.pipeline() as pipe:
        pipe.set("tx:n", 1).incr("tx:n").incrby("tx:n", 5).get("tx:n")
        assert pipe.execute() == [True, 2, 7, "7"]
    # An error inside EXEC is reported, and the other commands ran.
    with client.pipeline() as pipe:
        pipe.set("tx:s", "text").incr("tx:s").set("tx:after", "1")
        results = pipe.execute(raise_on_error=False)
        assert results[0] is True and results[2] is True, results
        assert isinstance(results[1], redis.ResponseError), results
    assert client.get("tx:after") == "1"

    # transaction() retries the function while a watched key changes under it (WATCH, MULTI,
    # EXEC); the first attempt is disturbed by another client's write.
    other = redis.Redis(connection_pool=client.connection_pool)
    attempts = []

    def double(pipe: redis.client.Pipeline) -> None:
        value = int(pipe.get("tx:n"))
        attempts.append(value)
        if len(attempts) == 1:
            other.set("tx:n", 100)
        pipe.multi()
        pipe.set("tx:n", value * 2)

    assert client.transaction(double, "tx:n") == [True]
    assert attempts == [7, 100], attempts
    assert client.get("tx:n") == "200"

    # A watched key changed before EXEC: WatchError, nothing written.
    with client.pipeline() as pipe:
        pipe.watch("tx:n")
        other.set("tx:n", 1)
        pipe.multi()
        pipe.set("tx:n", "lost")
        try:
            pipe.execute()
        except redis.WatchError:
            pass
        else:
            raise AssertionError("EXEC ran although a watched key changed")
    assert client.get("tx:n") == "1"


def check_hashes_and_sets(client: redis.Redis) -> None:
    # A hash past the listpack thresholds: every field comes back, by HGETALL and by HSCAN.
    fields = {f"field:{i}": str(i) for i in range(1000)}
    assert client.hset("h:big", mapping=fields) == len(fields)
    assert client.hlen("h:big") == len(fields)
    assert client.hgetall("h:big") == fields
    assert client.hget("h:big", "field:7") == "7"
    assert client.hmget("h:big", ["field:1", "missing"]) == ["1", None]
    assert client.hincrby("h:big", "field:7", 3) == 10
    assert client.hincrby("h:big", "counter", -2) == -2
    assert client.hincrbyfloat("h:big", "counter", 0.5) == -1.5
    assert client.hexists("h:big", "counter") is True
    assert client.hdel("h:big", "counter", "missing") == 1
    fields["field:7"] = "10"
    scanned = list(client.hscan_iter("h:big", count=50))
    assert len(scanned) == len(fields) and dict(scanned) == fields
    assert dict(client.hscan_iter("h:big", match="field:99*")) == {
        field: value for field, value in fields.items() if field.startswith("field:99")
    }
    assert client.hrandfield("h:big") in fields
    assert set(client.hkeys("h:big")) == set(fields) and sorted(client.hvals("h:big")) == sorted(fields.values())
    assert client.object("encoding", "h:big") == "hashtable"
    assert client.hset("h:small", "a", "1") == 1
    assert client.object("encoding", "h:small") == "listpack"
    assert client.type("h:small") == "hash"

    # A set of 1000 members: SMEMBERS and SSCAN give each member once.
    members = {f"member:{i}" for i in range(1000)}
    assert client.sadd("s:big", *members) == len(members)
    assert client.sadd("s:big", "member:1") == 0
    assert client.scard("s:big") == len(members)
    assert set(client.smembers("s:big")) == members
    scanned = list(client.sscan_iter("s:big", count=50))
    assert len(scanned) == len(members) and set(scanned) == members
    assert set(client.sscan_iter("s:big", match="member:99*")) == {m for m in members if m.startswith("member:99")}
    assert client.sismember("s:big", "member:5") in (True, 1)
    assert list(client.smismember("s:big", ["member:5", "missing"])) in ([True, False], [1, 0])
    assert client.srem("s:big", "member:5", "missing") == 1
    members.discard("member:5")
    popped = client.spop("s:big")
    assert popped in members
    members.discard(popped)
    several = client.spop("s:big", 10)
    assert len(several) == 10 and set(several) <= members
    members -= set(several)
    assert set(client.smembers("s:big")) == members
    assert client.srandmember("s:big") in members
    assert client.sadd("s:ints", 3, 1, 2) == 3
    assert client.object("encoding", "s:ints") == "intset"
    assert client.sinter("s:ints", "s:big") in (set(), [])
    assert client.sunionstore("s:union", "s:ints", "s:big") == len(members) + 3
    assert client.smove("s:ints", "s:other", 1) is True
    assert set(client.smembers("s:other")) == {"1"}
    try:
        client.hset("s:other", "f", "v")
    except redis.ResponseError as error:
        assert "wrong kind of value" in str(error), str(error)
    else:
        raise AssertionError("HSET on a set did not fail")

    # MULTI ... EXEC mixing hashes and sets.
    with client.pipeline(transaction=True) as pipe:
        pipe.hset("hs:tx:h", mapping={"a": "1", "b": "2"}).sadd("hs:tx:s", "x", "y").hincrby("hs:tx:h", "a", 5)
        pipe.scard("hs:tx:s").hgetall("hs:tx:h")
        assert pipe.execute() == [2, 2, 6, 2, {"a": "6", "b": "2"}]

    # WATCH on a hash: transaction() retries while another client changes it.
    other = redis.Redis(connection_pool=client.connection_pool)
    attempts = []

    def move_balance(pipe: redis.client.Pipeline) -> None:
        balance = int(pipe.hget("hs:tx:h", "a"))
        attempts.append(balance)
        if len(attempts) == 1:
            other.hset("hs:tx:h", "a", "100")
        pipe.multi()
        pipe.hset("hs:tx:h", mapping={"a": "0", "moved": str(balance)})
        pipe.sadd("hs:tx:s", f"moved:{balance}")

    assert client.transaction(move_balance, "hs:tx:h") == [1, 1]
    assert attempts == [6, 100], attempts
    assert client.hgetall("hs:tx:h") == {"a": "0", "b": "2", "moved": "100"}
    assert set(client.smembers("hs:tx:s")) == {"x", "y", "moved:100"}

    # The key goes with its last field or member.
    assert client.hdel("h:small", "a") == 1 and client.exists("h:small") == 0
    assert client.delete("h:big", "s:big", "s:union", "s:other", "hs:tx:h", "hs:tx:s") == 6


def check_server_and_connection(client: redis.Redis, protocol: int) -> None:
    assert client.client_setname("py-client") is True
    assert client.client_getname() == "py-client"
    assert isinstance(client.client_id(), int)
    assert client.config_get("maxmemory") == {"maxmemory": "0"}
    info = client.info()
    assert info["redis_version"] and info["connected_clients"] >= 1, info
    assert client.info("keyspace")["db0"]["keys"] >= 100
    seconds, microseconds = client.time()
    assert seconds > 1_600_000_000 and 0 <= microseconds < 1_000_000
    hello = client.execute_command("HELLO", protocol)
    # RESP3 has maps; in RESP2 the same fields come as a flat list.
    fields = hello if isinstance(hello, dict) else dict(zip(hello[::2], hello[1::2]))
    assert fields["proto"] == protocol and fields["server"] == "redis", hello


def check_database_urls(port: int, protocol: int, password: str | None) -> None:
    # The database number in a URL, as Celery, Sidekiq and Rails configure it: redis-py sends
    # SELECT on every new connection of the pool.
    auth = f":{password}@" if password else ""
    url = f"redis://{auth}127.0.0.1:{port}"
    zero = redis.Redis.from_url(f"{url}/0", protocol=protocol, decode_responses=True)
    two = redis.Redis.from_url(f"{url}/2", protocol=protocol, decode_responses=True)
    assert two.flushdb() is True
    assert two.set("url:k", "in two") is True
    assert zero.get("url:k") is None
    assert two.get("url:k") == "in two"
    assert two.dbsize() == 1
    assert zero.info("keyspace")["db2"]["keys"] == 1
    assert two.move("url:k", 3) is True
    assert redis.Redis.from_url(f"{url}/3", protocol=protocol, decode_responses=True).get("url:k") == "in two"
    assert zero.swapdb(2, 3) is True
    assert two.get("url:k") == "in two"
    # A transaction runs in the connection's database.
    with two.pipeline() as pipe:
        assert pipe.set("url:t", "1").incr("url:t").execute() == [True, 2]
    assert zero.get("url:t") is None and two.get("url:t") == "2"
    try:
        redis.Redis.from_url(f"{url}/16", protocol=protocol).ping()
    except (redis.ResponseError, redis.ConnectionError) as error:
        assert "DB index is out of range" in str(error), str(error)
    else:
        raise AssertionError("database 16 was accepted")


def check_errors(client: redis.Redis) -> None:
    expectations = [
        (("INCR", "greeting"), "value is not an integer or out of range"),
        (("NOSUCH", "x"), "unknown command 'NOSUCH', with args beginning with: 'x' "),
        (("SET", "k", "v", "NX", "XX"), "syntax error"),
        (("GET",), "wrong number of arguments for 'get' command"),
    ]
    for command, message in expectations:
        try:
            client.execute_command(*command)
        except redis.ResponseError as error:
            assert str(error) == message, (command, str(error))
        else:
            raise AssertionError(f"{command} did not fail")


def check_authentication(port: int, protocol: int, password: str) -> None:
    # redis-py retries an AuthenticationError (a ConnectionError) with backoff for seconds,
    # against Redis too: ask for no retry, the refusal is what is checked.
    no_retry = Retry(NoBackoff(), 0)
    for wrong in (None, password + "-wrong"):
        try:
            redis.Redis(host="127.0.0.1", port=port, protocol=protocol, password=wrong, retry=no_retry).get("k")
        except redis.AuthenticationError:
            continue
        raise AssertionError(f"password {wrong!r} was accepted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--protocol", type=int, choices=(2, 3), required=True)
    parser.add_argument("--password")
    args = parser.parse_args()
    client = redis.Redis(
        host="127.0.0.1",
        port=args.port,
        protocol=args.protocol,
        password=args.password,
        decode_responses=True,
        socket_timeout=30,
    )
    assert client.flushdb() is True
    check_commands(client)
    check_pipeline_and_scan(client)
    check_transactions(client)
    check_hashes_and_sets(client)
    check_server_and_connection(client, args.protocol)
    check_errors(client)
    check_database_urls(args.port, args.protocol, args.password)
    if args.password:
        check_authentication(args.port, args.protocol, args.password)
    print("ok")


if __name__ == "__main__":
    main()
