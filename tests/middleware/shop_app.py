"""A small shop on Flask whose sessions live in Redis through Flask-Session.

The session middleware is the published, unmodified Flask-Session (its Redis backend,
over redis-py): the only cartwheel-specific thing is the Redis URL, which points at a
cartwheel node's RESP listener. tests/integration/resp_middleware.rs starts two of
these, one per region, and walks a user through both.

Routes (JSON answers, 401 {"error": "not_logged_in"} without a session):
  POST /login   {"user": id}  -> stores the user id and an empty cart in the session
  POST /cart    {"item": name} -> appends the item to the cart kept in the session
  GET  /cart                  -> {"user", "cart", "region"}
  POST /logout                -> session.clear(): Flask-Session deletes the Redis key

Run: python shop_app.py --redis-url redis://127.0.0.1:PORT/0 --region NAME
It serves HTTP on 127.0.0.1 on a free port and prints "listening PORT" once it
accepts connections. It exits when its standard input closes, so that it never
outlives the test that started it, even one killed without a chance to clean up.
"""

import argparse
import os
import sys
import threading

import redis
from flask import Flask, jsonify, request, session
from flask_session import Session
from werkzeug.serving import make_server


def create_app(redis_url, region):
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="shop-test-secret",
        SESSION_TYPE="redis",
        SESSION_REDIS=redis.Redis.from_url(redis_url),
        SESSION_KEY_PREFIX="shop:session:",
    )
    Session(app)

    def not_logged_in():
        return jsonify(error="not_logged_in", region=region), 401

    @app.post("/login")
    def login():
        user = request.get_json(force=True).get("user")
        if not isinstance(user, str) or not user:
            return jsonify(error="user_needed"), 400
        session["user"] = user
        session["cart"] = []
        return jsonify(user=user, region=region)

    @app.post("/cart")
    def add_to_cart():
        if "user" not in session:
            return not_logged_in()
        item = request.get_json(force=True).get("item")
        if not isinstance(item, str) or not item:
            return jsonify(error="item_needed"), 400
        # A new list, so the session sees the change and is saved.
        session["cart"] = session.get("cart", []) + [item]
        return jsonify(user=session["user"], cart=session["cart"], region=region)

    @app.get("/cart")
    def read_cart():
        if "user" not in session:
            return not_logged_in()
        return jsonify(user=session["user"], cart=session.get("cart", []), region=region)

    @app.post("/logout")
    def logout():
        if "user" not in session:
            return not_logged_in()
        session.clear()
        return jsonify(logged_out=True, region=region)

    return app


def exit_when_stdin_closes():
    sys.stdin.buffer.read()
    os._exit(0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--region", required=True)
    args = parser.parse_args()
    app = create_app(args.redis_url, args.region)
    server = make_server("127.0.0.1", 0, app)
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    print(f"listening {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
