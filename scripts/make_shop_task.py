#!/usr/bin/env python3
"""Builds the shipped default task of `tuneup ladder`: text-to-SQL questions in English and Korean over a small
users/orders shop database.

Writes (all under examples/ladder/shop/):
  shop.sql                        schema + rows (SQLite; plain SQL)
  databases/shop/shop.sqlite      that database, rebuilt from shop.sql and VACUUMed
  tables.json                     Spider tables.json entry for db_id `shop`
  questions.jsonl                 {"id", "db_id", "lang", "question", "query"} per line

Deterministic: a fixed seed, no clock, no environment; running it twice gives byte-identical files. Every gold
query is run against the built database and the script fails loudly when one errors, returns no rows, returns
only NULL/0 for a single-value answer, or (for list questions) returns the whole table.

Usage: python3 scripts/make_shop_task.py [--out DIR]
"""

import argparse
import collections
import datetime
import json
import os
import random
import sqlite3
import sys

SEED = 20240101
DB_ID = "shop"
TARGET_RECORDS = 360

# ---------------------------------------------------------------------------------------------------------------
# Source lists
# ---------------------------------------------------------------------------------------------------------------

KO_SURNAMES = [
    ("김", "kim"), ("이", "lee"), ("박", "park"), ("최", "choi"), ("정", "jung"), ("강", "kang"), ("조", "cho"),
    ("윤", "yoon"), ("장", "jang"), ("임", "lim"), ("한", "han"), ("오", "oh"), ("서", "seo"), ("신", "shin"),
    ("권", "kwon"), ("황", "hwang"), ("송", "song"), ("홍", "hong"),
]
KO_GIVEN = [
    ("민준", "minjun"), ("서연", "seoyeon"), ("지호", "jiho"), ("하은", "haeun"), ("도윤", "doyun"),
    ("서윤", "seoyun"), ("예준", "yejun"), ("지우", "jiwoo"), ("시우", "siwoo"), ("수아", "sua"),
    ("주원", "juwon"), ("지민", "jimin"), ("하준", "hajun"), ("채원", "chaewon"), ("건우", "gunwoo"),
    ("다은", "daeun"), ("현우", "hyunwoo"), ("유진", "yujin"), ("우진", "woojin"), ("소윤", "soyun"),
    ("준서", "junseo"), ("예린", "yerin"), ("태윤", "taeyun"), ("민서", "minseo"), ("성민", "sungmin"),
    ("지아", "jia"), ("동현", "donghyun"), ("수빈", "subin"), ("재원", "jaewon"), ("은지", "eunji"),
]
EN_FIRST = [
    "Emily", "James", "Olivia", "Daniel", "Sophia", "Michael", "Grace", "Ethan", "Chloe", "Ryan", "Hannah",
    "Lucas", "Mia", "Noah", "Ava", "Oliver", "Sarah", "David",
]
EN_LAST = [
    "Carter", "Brown", "Wilson", "Taylor", "Anderson", "Thomas", "Moore", "Martin", "Clark", "Walker", "Young",
    "Hall", "Allen", "King", "Wright", "Bennett",
]
EMAIL_DOMAINS = ["gmail.com", "naver.com", "daum.net", "kakao.com", "outlook.com"]

KOREAN_CITIES = [("Seoul", 55), ("Busan", 16), ("Incheon", 12), ("Daegu", 10), ("Daejeon", 7), ("Gwangju", 7),
                 ("Suwon", 8)]
FOREIGN_CITIES = ["Tokyo", "Singapore", "London", "San Francisco"]
CITY_KO = {
    "Seoul": "서울", "Busan": "부산", "Incheon": "인천", "Daegu": "대구", "Daejeon": "대전", "Gwangju": "광주",
    "Suwon": "수원", "Tokyo": "도쿄", "Singapore": "싱가포르", "London": "런던", "San Francisco": "샌프란시스코",
}

PRODUCTS = {  # category -> [(name, price in won)]
    "Electronics": [("Wireless Earbuds", 89000), ("Bluetooth Speaker", 59000), ("USB-C Charger", 25000),
                    ("Smart Watch", 249000), ("Noise Cancelling Headphones", 329000), ("Portable SSD 1TB", 139000),
                    ("Mechanical Keyboard", 119000)],
    "Books": [("SQL for Beginners", 28000), ("Korean Home Cooking", 32000), ("Learning Rust", 45000),
              ("Jeju Travel Guide", 18000), ("Mystery Novel Box Set", 54000), ("Kids Picture Book", 15000),
              ("Data Science Handbook", 42000)],
    "Clothing": [("Cotton T-Shirt", 19000), ("Denim Jacket", 79000), ("Running Socks 3-Pack", 12000),
                 ("Wool Sweater", 69000), ("Rain Jacket", 99000), ("Baseball Cap", 25000), ("Linen Shirt", 45000)],
    "Home": [("Ceramic Mug Set", 24000), ("Stainless Tumbler", 22000), ("Bamboo Cutting Board", 27000),
             ("LED Desk Lamp", 49000), ("Memory Foam Pillow", 59000), ("Cast Iron Pan", 65000)],
    "Beauty": [("Sunscreen SPF50", 18000), ("Hydrating Toner", 26000), ("Sheet Mask 10-Pack", 15000),
               ("Hand Cream Trio", 21000), ("Vitamin C Serum", 38000), ("Hair Dryer", 89000)],
    "Sports": [("Yoga Mat", 35000), ("Resistance Bands", 18000), ("Dumbbell Set 10kg", 79000),
               ("Running Shoes", 129000), ("Cycling Gloves", 29000), ("Water Bottle 1L", 16000),
               ("Tennis Racket", 159000)],
}
CATEGORY_KO = {"Electronics": "전자제품", "Books": "도서", "Clothing": "의류", "Home": "생활용품",
               "Beauty": "뷰티", "Sports": "스포츠"}

STATUSES = ["paid", "shipped", "cancelled", "refunded"]
STATUS_KO = {"paid": "결제 완료된", "shipped": "배송된", "cancelled": "취소된", "refunded": "환불된"}
STATUS_KO_NOUN = {"paid": "결제 완료", "shipped": "배송", "cancelled": "취소", "refunded": "환불"}
MONTH_EN = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
            "November", "December"]
QUARTER_RANGE = {1: ("2024-01-01", "2024-03-31"), 2: ("2024-04-01", "2024-06-30"),
                 3: ("2024-07-01", "2024-09-30"), 4: ("2024-10-01", "2024-12-31")}

N_USERS = 60
N_KOREAN_NAMES = 44
N_ORDERS = 400
N_NEVER_ORDERING = 7
N_NEVER_ORDERED_PRODUCTS = 3


# ---------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------

def day(d):
    return d.isoformat()


def make_data(rng):
    # Users -------------------------------------------------------------------------------------------------
    users = []
    seen_names, seen_emails = set(), set()

    def add_user(name, local, city):
        email = f"{local}@{rng.choice(EMAIL_DOMAINS)}"
        n = 2
        while email in seen_emails:
            email = f"{local}{n}@{email.split('@')[1]}"
            n += 1
        seen_emails.add(email)
        seen_names.add(name)
        users.append({"name": name, "email": email, "city": city})

    korean_city_names = [c for c, _ in KOREAN_CITIES]
    korean_city_weights = [w for _, w in KOREAN_CITIES]
    while len(users) < N_KOREAN_NAMES:
        (sur, sur_r), (giv, giv_r) = rng.choice(KO_SURNAMES), rng.choice(KO_GIVEN)
        name = sur + giv
        if name in seen_names:
            continue
        city = rng.choices(korean_city_names, korean_city_weights)[0]
        add_user(name, f"{giv_r}.{sur_r}", city)
    foreign_left = [c for c in FOREIGN_CITIES for _ in range(2)]  # two users in each foreign city
    rng.shuffle(foreign_left)
    while len(users) < N_USERS:
        first, last = rng.choice(EN_FIRST), rng.choice(EN_LAST)
        name = f"{first} {last}"
        if name in seen_names:
            continue
        if foreign_left:
            city = foreign_left.pop()
        else:
            city = rng.choice(["Seoul", "Seoul", "Busan", "Incheon"])
        add_user(name, f"{first.lower()}.{last.lower()}", city)
    rng.shuffle(users)
    start_joined = datetime.date(2022, 1, 1)
    span = (datetime.date(2024, 11, 30) - start_joined).days
    for u in users:
        u["joined"] = start_joined + datetime.timedelta(days=int(span * rng.random() ** 0.8))
    users.sort(key=lambda u: (u["joined"], u["name"]))
    for i, u in enumerate(users, 1):
        u["id"] = i

    # Products ----------------------------------------------------------------------------------------------
    products = []
    for cat, items in PRODUCTS.items():
        for name, price in items:
            products.append({"name": name, "category": cat, "price": price})
    rng.shuffle(products)
    for i, p in enumerate(products, 1):
        p["id"] = i

    # Orders ------------------------------------------------------------------------------------------------
    # A few users never order (mostly recent sign-ups), a few products are never ordered.
    late = [u for u in users if u["joined"] >= datetime.date(2024, 6, 1)]
    never = set(u["id"] for u in rng.sample(late, min(4, len(late))))
    while len(never) < N_NEVER_ORDERING:
        never.add(rng.choice(users)["id"])
    user_weight = {u["id"]: (0.0 if u["id"] in never else rng.lognormvariate(0, 0.8)) for u in users}
    never_products = set(p["id"] for p in rng.sample(products, N_NEVER_ORDERED_PRODUCTS))
    product_weight = {p["id"]: (0.0 if p["id"] in never_products else rng.lognormvariate(0, 0.7))
                      for p in products}
    month_weight = [8, 7, 8, 8, 9, 8, 8, 9, 9, 10, 13, 14]

    start = datetime.date(2024, 1, 1)
    orders = []
    while len(orders) < N_ORDERS:
        month = rng.choices(range(1, 13), month_weight)[0]
        first = datetime.date(2024, month, 1)
        last = (datetime.date(2024, month + 1, 1) if month < 12 else datetime.date(2025, 1, 1)) - \
            datetime.timedelta(days=1)
        d = first + datetime.timedelta(days=rng.randrange((last - first).days + 1))
        eligible = [u for u in users if u["joined"] <= d and user_weight[u["id"]] > 0]
        u = rng.choices(eligible, [user_weight[x["id"]] for x in eligible])[0]
        if d >= datetime.date(2024, 12, 18):
            status = rng.choices(STATUSES, [70, 20, 10, 0])[0]
        else:
            status = rng.choices(STATUSES, [6, 72, 12, 10])[0]
        orders.append({"user_id": u["id"], "ordered_at": d, "status": status})
    assert start <= min(o["ordered_at"] for o in orders)
    orders.sort(key=lambda o: (o["ordered_at"], o["user_id"]))
    for i, o in enumerate(orders, 1):
        o["id"] = i

    # Order items -------------------------------------------------------------------------------------------
    orderable = [p for p in products if product_weight[p["id"]] > 0]
    items = []
    for o in orders:
        n = rng.choices([1, 2, 3, 4], [30, 35, 22, 13])[0]
        chosen = []
        while len(chosen) < n:
            p = rng.choices(orderable, [product_weight[x["id"]] for x in orderable])[0]
            if p not in chosen:
                chosen.append(p)
        for p in chosen:
            qty = rng.choices([1, 2, 3, 4], [65, 22, 9, 4])[0]
            price = p["price"]
            if rng.random() < 0.15:  # a sale: 10% off, rounded to 100 won
                price = int(round(price * 0.9 / 100.0)) * 100
            items.append({"order_id": o["id"], "product_id": p["id"], "quantity": qty, "unit_price": price})
    for i, it in enumerate(items, 1):
        it["id"] = i
    return users, products, orders, items


SCHEMA = """CREATE TABLE users (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  email TEXT NOT NULL,
  city TEXT NOT NULL,
  joined DATE NOT NULL
);
CREATE TABLE products (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  category TEXT NOT NULL,
  price INTEGER NOT NULL
);
CREATE TABLE orders (
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL,
  ordered_at DATE NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('paid', 'shipped', 'cancelled', 'refunded')),
  FOREIGN KEY (user_id) REFERENCES users (id)
);
CREATE TABLE order_items (
  id INTEGER PRIMARY KEY,
  order_id INTEGER NOT NULL,
  product_id INTEGER NOT NULL,
  quantity INTEGER NOT NULL,
  unit_price INTEGER NOT NULL,
  FOREIGN KEY (order_id) REFERENCES orders (id),
  FOREIGN KEY (product_id) REFERENCES products (id)
);
"""

COLUMNS = [  # table, column, Spider type, readable name
    ("users", "id", "number", "id"), ("users", "name", "text", "name"), ("users", "email", "text", "email"),
    ("users", "city", "text", "city"), ("users", "joined", "time", "joined"),
    ("products", "id", "number", "id"), ("products", "name", "text", "name"),
    ("products", "category", "text", "category"), ("products", "price", "number", "price"),
    ("orders", "id", "number", "id"), ("orders", "user_id", "number", "user id"),
    ("orders", "ordered_at", "time", "ordered at"), ("orders", "status", "text", "status"),
    ("order_items", "id", "number", "id"), ("order_items", "order_id", "number", "order id"),
    ("order_items", "product_id", "number", "product id"), ("order_items", "quantity", "number", "quantity"),
    ("order_items", "unit_price", "number", "unit price"),
]
TABLES = [("users", "users"), ("products", "products"), ("orders", "orders"), ("order_items", "order items")]
FOREIGN_KEYS = [(("orders", "user_id"), ("users", "id")), (("order_items", "order_id"), ("orders", "id")),
                (("order_items", "product_id"), ("products", "id"))]


def sql_literal(v):
    if isinstance(v, int):
        return str(v)
    if isinstance(v, datetime.date):
        v = v.isoformat()
    return "'" + str(v).replace("'", "''") + "'"


def render_sql(users, products, orders, items):
    out = ["-- Shop database of the `tuneup ladder` default task.",
           "-- Generated by scripts/make_shop_task.py (fixed seed); do not edit by hand.",
           "-- Prices and amounts are in Korean won (integers); dates are ISO strings (YYYY-MM-DD).",
           "", SCHEMA.rstrip(), "", "BEGIN TRANSACTION;"]

    def rows(table, cols, data):
        for r in data:
            out.append(f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
                       f"({', '.join(sql_literal(r[c]) for c in cols)});")

    rows("users", ["id", "name", "email", "city", "joined"], users)
    rows("products", ["id", "name", "category", "price"], products)
    rows("orders", ["id", "user_id", "ordered_at", "status"], orders)
    rows("order_items", ["id", "order_id", "product_id", "quantity", "unit_price"], items)
    out.append("COMMIT;")
    return "\n".join(out) + "\n"


def tables_json():
    col_names_orig = [[-1, "*"]]
    col_names = [[-1, "*"]]
    col_types = ["text"]
    index = {}
    tnames = [t for t, _ in TABLES]
    for t, c, ty, readable in COLUMNS:
        ti = tnames.index(t)
        index[(t, c)] = len(col_names_orig)
        col_names_orig.append([ti, c])
        col_names.append([ti, readable])
        col_types.append(ty)
    entry = {
        "column_names": col_names,
        "column_names_original": col_names_orig,
        "column_types": col_types,
        "db_id": DB_ID,
        "foreign_keys": [[index[a], index[b]] for a, b in FOREIGN_KEYS],
        "primary_keys": [index[(t, "id")] for t in tnames],
        "table_names": [r for _, r in TABLES],
        "table_names_original": tnames,
    }
    return json.dumps([entry], indent=3, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# Question templates
# ---------------------------------------------------------------------------------------------------------------
# Each template: name, level, en (phrasings), ko (phrasings), sql, slots (callable(db, rng) -> list of slot
# dicts, in order of preference), n (how many records), list_base (for list questions: the table whose row count
# the result must stay below; None for aggregates), topk (result column of the primary sort key when the query
# ends in LIMIT: a candidate whose k-th and (k+1)-th rows tie on it is skipped so a missing tie-break can't
# change the answer).

ITEM_VALUE = "oi.quantity * oi.unit_price"


def q(db, sql, *args):
    return db.execute(sql, args).fetchall()


def won_en(n):
    return f"{n:,} won"


def won_ko(n):
    if n % 10000 == 0:
        return f"{n // 10000}만 원"
    return f"{n:,}원"


def month_slots(months=range(1, 13)):
    return [{"m": m, "mm": f"{m:02d}", "month_en": MONTH_EN[m - 1]} for m in months]


def city_slots(db, rng, min_users=1):
    rows = q(db, "SELECT city, COUNT(*) FROM users GROUP BY city ORDER BY COUNT(*) DESC, city")
    out = [{"city": c, "city_ko": CITY_KO[c]} for c, n in rows if n >= min_users]
    return out


def category_slots(db, rng):
    return [{"cat": c, "cat_ko": CATEGORY_KO[c]} for c in PRODUCTS]


def shuffled(rng, xs):
    xs = list(xs)
    rng.shuffle(xs)
    return xs


def product_slots(db, rng, ordered_only=True):
    sql = "SELECT name FROM products"
    if ordered_only:
        sql += " WHERE id IN (SELECT product_id FROM order_items)"
    return shuffled(rng, [{"product": n} for (n,) in q(db, sql + " ORDER BY id")])


def user_slots(db, rng, min_orders=1):
    rows = q(db, "SELECT u.name FROM users u JOIN orders o ON o.user_id = u.id GROUP BY u.id "
                 "HAVING COUNT(*) >= ? ORDER BY u.id", min_orders)
    return shuffled(rng, [{"user": n} for (n,) in rows])


def status_slots(db, rng, statuses=STATUSES):
    return [{"status": s, "status_ko": STATUS_KO[s], "status_ko_noun": STATUS_KO_NOUN[s]} for s in statuses]


def cross(rng, a, b, limit=None):
    out = [dict(x, **y) for x in a for y in b]
    rng.shuffle(out)
    return out[:limit] if limit else out


def T(name, level, en, ko, sql, slots=None, n=None, list_base=None, topk=None):
    if isinstance(en, str):
        en = [en]
    if isinstance(ko, str):
        ko = [ko]
    if slots is None:
        n = n or (len(en) + len(ko))
    return {"name": name, "level": level, "en": en, "ko": ko, "sql": sql, "slots": slots, "n": n,
            "list_base": list_base, "topk": topk}


def thresholds(values, fractions, step):
    """Round numbers at the given quantiles of values (sorted), distinct, multiples of step."""
    values = sorted(values)
    out = []
    for f in fractions:
        v = values[min(len(values) - 1, int(f * len(values)))]
        t = max(step, int(round(v / step)) * step)
        if t not in out:
            out.append(t)
    return out


def templates():
    ts = []
    # ---- easy ----------------------------------------------------------------------------------------------
    ts.append(T("users_in_city_count", "easy",
                ["How many users live in {city}?", "What is the number of users based in {city}?"],
                ["{city_ko}에 사는 사용자는 몇 명인가요?", "{city_ko}에 거주하는 회원 수를 알려줘."],
                "SELECT COUNT(*) FROM users WHERE city = '{city}'",
                slots=lambda db, rng: city_slots(db, rng), n=10))
    ts.append(T("users_in_city_list", "easy",
                ["List the names and emails of users who live in {city}.",
                 "Show the name and email of every user from {city}."],
                ["{city_ko}에 사는 사용자들의 이름과 이메일을 보여줘.", "{city_ko} 거주 회원의 이름과 이메일 목록을 알려줘."],
                "SELECT name, email FROM users WHERE city = '{city}'",
                slots=lambda db, rng: city_slots(db, rng), n=10, list_base="users"))
    ts.append(T("category_products_by_price", "easy",
                "Show the names and prices of the products in the {cat} category, from the most expensive to the "
                "cheapest.",
                "{cat} 카테고리 상품의 이름과 가격을 비싼 순서대로 보여줘.",
                "SELECT name, price FROM products WHERE category = '{cat}' ORDER BY price DESC, id",
                slots=category_slots, n=6, list_base="products"))
    ts.append(T("products_per_category", "easy",
                ["How many products are there in each category?", "Count the products per category."],
                ["카테고리별 상품 수를 알려줘.", "각 카테고리에 상품이 몇 개씩 있나요?"],
                "SELECT category, COUNT(*) FROM products GROUP BY category"))
    ts.append(T("orders_with_status_count", "easy",
                ["How many orders have the status '{status}'?", "Count the orders whose status is {status}."],
                ["{status_ko} 주문은 몇 건인가요?", "주문 상태가 '{status}'인 주문 수를 알려줘."],
                "SELECT COUNT(*) FROM orders WHERE status = '{status}'",
                slots=status_slots, n=8))
    ts.append(T("orders_in_month_count", "easy",
                "How many orders were placed in {month_en} 2024?",
                "2024년 {m}월에 들어온 주문은 몇 건인가요?",
                "SELECT COUNT(*) FROM orders WHERE strftime('%Y-%m', ordered_at) = '2024-{mm}'",
                slots=lambda db, rng: shuffled(rng, month_slots()), n=10))
    ts.append(T("products_cheaper_than", "easy",
                "Which products cost less than {x_en}? Give their names and prices.",
                "가격이 {x_ko} 미만인 상품의 이름과 가격을 보여줘.",
                "SELECT name, price FROM products WHERE price < {x}",
                slots=lambda db, rng: [{"x": x, "x_en": won_en(x), "x_ko": won_ko(x)} for x in
                                       thresholds([p for (p,) in q(db, "SELECT price FROM products")],
                                                  [0.15, 0.25, 0.35, 0.5, 0.6, 0.7], 10000)],
                n=6, list_base="products"))
    ts.append(T("most_expensive_in_category", "easy",
                "What is the most expensive product in the {cat} category, and how much does it cost?",
                "{cat} 카테고리에서 가장 비싼 상품은 무엇이고 가격은 얼마인가요?",
                "SELECT name, price FROM products WHERE category = '{cat}' ORDER BY price DESC, id LIMIT 1",
                slots=category_slots, n=6, list_base="products", topk=1))
    ts.append(T("cheapest_product", "easy",
                ["What is the cheapest product?", "Which product has the lowest price?"],
                ["가장 저렴한 상품은 무엇인가요?", "가격이 제일 낮은 상품의 이름과 가격을 알려줘."],
                "SELECT name, price FROM products ORDER BY price, id LIMIT 1",
                list_base="products", topk=1))
    ts.append(T("users_joined_after", "easy",
                "List the users who joined after {d}, ordered by join date.",
                "{d_ko} 이후에 가입한 사용자를 가입일 순으로 보여줘.",
                "SELECT name, joined FROM users WHERE joined > '{d}' ORDER BY joined, id",
                slots=lambda db, rng: [{"d": d, "d_ko": f"{int(d[:4])}년 {int(d[5:7])}월 {int(d[8:])}일"}
                                       for d in ["2024-09-30", "2024-06-30", "2024-03-31", "2023-12-31"]],
                n=4, list_base="users"))
    ts.append(T("distinct_cities", "easy",
                ["Which cities do our users live in? List each city once.", "What are the distinct user cities?"],
                ["사용자들이 사는 도시 목록을 중복 없이 보여줘.", "회원들이 거주하는 도시를 한 번씩만 나열해줘."],
                "SELECT DISTINCT city FROM users", list_base="users"))
    ts.append(T("avg_price_of_category", "easy",
                "What is the average price of products in the {cat} category?",
                "{cat} 카테고리 상품의 평균 가격은 얼마인가요?",
                "SELECT AVG(price) FROM products WHERE category = '{cat}'",
                slots=category_slots, n=6))
    ts.append(T("price_of_product", "easy",
                "How much does the '{product}' cost?",
                "'{product}' 상품의 가격은 얼마인가요?",
                "SELECT price FROM products WHERE name = '{product}'",
                slots=lambda db, rng: product_slots(db, rng, False), n=8))
    ts.append(T("orders_of_user", "easy",
                "Show the id, date and status of every order placed by {user}, oldest first.",
                "{user}님이 주문한 내역의 주문 번호, 주문일, 상태를 오래된 순서대로 보여줘.",
                "SELECT o.id, o.ordered_at, o.status FROM orders o JOIN users u ON o.user_id = u.id "
                "WHERE u.name = '{user}' ORDER BY o.ordered_at, o.id",
                slots=lambda db, rng: user_slots(db, rng, 2), n=6, list_base="orders"))
    ts.append(T("users_count_total", "easy",
                ["How many users are there?", "What is the total number of registered users?"],
                ["전체 사용자는 몇 명인가요?", "가입한 회원 수는 모두 몇 명이야?"],
                "SELECT COUNT(*) FROM users"))
    # ---- medium --------------------------------------------------------------------------------------------
    ts.append(T("order_total_value", "medium",
                "What is the total amount of order number {oid}?",
                "주문 번호 {oid}번의 총 주문 금액은 얼마인가요?",
                f"SELECT SUM({ITEM_VALUE}) FROM order_items oi WHERE oi.order_id = {{oid}}",
                slots=lambda db, rng: [{"oid": i} for i in
                                       rng.sample([r[0] for r in q(db, "SELECT id FROM orders ORDER BY id")], 8)],
                n=8))
    ts.append(T("revenue_in_month_valid", "medium",
                "What was the total revenue from paid or shipped orders in {month_en} 2024?",
                "2024년 {m}월에 결제 완료되었거나 배송된 주문의 매출 합계는 얼마인가요?",
                f"SELECT SUM({ITEM_VALUE}) FROM order_items oi JOIN orders o ON oi.order_id = o.id "
                "WHERE o.status IN ('paid', 'shipped') AND strftime('%Y-%m', o.ordered_at) = '2024-{mm}'",
                slots=lambda db, rng: shuffled(rng, month_slots()), n=10))
    ts.append(T("top_customers_in_month", "medium",
                ["Show the top {k} customers by total order amount in {month_en} 2024, with their totals.",
                 "Who were the {k} biggest spenders in {month_en} 2024? Show each name and total amount."],
                ["2024년 {m}월에 주문 금액 합계가 가장 큰 고객 상위 {k}명을 보여줘.",
                 "2024년 {m}월 주문 금액 기준 상위 {k}명의 고객 이름과 합계 금액을 알려줘."],
                f"SELECT u.name, SUM({ITEM_VALUE}) AS total FROM users u JOIN orders o ON o.user_id = u.id "
                "JOIN order_items oi ON oi.order_id = o.id WHERE strftime('%Y-%m', o.ordered_at) = '2024-{mm}' "
                "GROUP BY u.id ORDER BY total DESC, u.id LIMIT {k}",
                slots=lambda db, rng: [dict(s, k=rng.choice([3, 5])) for s in shuffled(rng, month_slots())],
                n=10, list_base="users", topk=1))
    ts.append(T("orders_per_status", "medium",
                ["How many orders are there for each status?", "Count the orders by status."],
                ["주문 상태별 주문 건수를 알려줘.", "상태별로 주문이 몇 건씩 있나요?"],
                "SELECT status, COUNT(*) FROM orders GROUP BY status"))
    ts.append(T("orders_per_city", "medium",
                ["How many orders came from users in each city? Sort from the most orders to the fewest.",
                 "For each city, count the orders placed by its users, largest count first."],
                ["도시별 주문 건수를 많은 순서대로 보여줘.", "사용자 거주 도시별로 주문 수를 세서 많은 순으로 정렬해줘."],
                "SELECT u.city, COUNT(*) AS order_count FROM orders o JOIN users u ON o.user_id = u.id "
                "GROUP BY u.city ORDER BY order_count DESC, u.city"))
    ts.append(T("revenue_per_category", "medium",
                ["What is the total sales amount for each product category?",
                 "Show each category with the total value of the items sold in it."],
                ["카테고리별 총 판매 금액을 알려줘.", "상품 카테고리마다 판매 금액 합계를 보여줘."],
                f"SELECT p.category, SUM({ITEM_VALUE}) FROM order_items oi JOIN products p ON oi.product_id = p.id "
                "GROUP BY p.category"))
    ts.append(T("revenue_per_category_valid", "medium",
                ["What is the total sales amount per category, counting only orders that were not cancelled or "
                 "refunded? Sort from the highest to the lowest.",
                 "Excluding cancelled and refunded orders, rank the categories by total sales amount."],
                ["취소되거나 환불된 주문을 제외하고 카테고리별 매출 합계를 높은 순서대로 보여줘.",
                 "취소·환불 주문을 빼고 카테고리별 매출액 순위를 알려줘."],
                f"SELECT p.category, SUM({ITEM_VALUE}) AS total FROM order_items oi "
                "JOIN orders o ON oi.order_id = o.id JOIN products p ON oi.product_id = p.id "
                "WHERE o.status NOT IN ('cancelled', 'refunded') GROUP BY p.category ORDER BY total DESC, p.category"))
    ts.append(T("best_sellers_by_quantity", "medium",
                "What are the {k} best-selling products by total quantity sold? Show the name and quantity.",
                "총 판매 수량 기준으로 가장 많이 팔린 상품 {k}개의 이름과 수량을 보여줘.",
                "SELECT p.name, SUM(oi.quantity) AS units FROM order_items oi JOIN products p ON oi.product_id = p.id "
                "GROUP BY p.id ORDER BY units DESC, p.id LIMIT {k}",
                slots=lambda db, rng: [{"k": k} for k in [3, 5, 10, 1, 4, 2]], n=6, list_base="products", topk=1))
    ts.append(T("top_products_in_category_revenue", "medium",
                "Which {k} products in the {cat} category brought in the most revenue? Show the name and revenue.",
                "{cat} 카테고리에서 매출이 가장 높은 상품 {k}개와 각 매출액을 알려줘.",
                f"SELECT p.name, SUM({ITEM_VALUE}) AS revenue FROM order_items oi "
                "JOIN products p ON oi.product_id = p.id WHERE p.category = '{cat}' "
                "GROUP BY p.id ORDER BY revenue DESC, p.id LIMIT {k}",
                slots=lambda db, rng: [dict(c, k=rng.choice([2, 3])) for c in category_slots(db, rng)],
                n=6, list_base="products", topk=1))
    ts.append(T("users_with_more_than_n_orders", "medium",
                "Which users have placed more than {n} orders? Show their names and order counts.",
                "주문을 {n}건 넘게 한 사용자의 이름과 주문 수를 보여줘.",
                "SELECT u.name, COUNT(*) AS order_count FROM users u JOIN orders o ON o.user_id = u.id "
                "GROUP BY u.id HAVING COUNT(*) > {n}",
                slots=lambda db, rng: [{"n": n} for n in [5, 8, 10, 12, 6, 9]], n=6, list_base="users"))
    ts.append(T("categories_avg_price_above", "medium",
                "Which categories have an average product price above {x_en}?",
                "평균 상품 가격이 {x_ko}을 넘는 카테고리는 어디인가요?",
                "SELECT category, AVG(price) FROM products GROUP BY category HAVING AVG(price) > {x}",
                slots=lambda db, rng: [{"x": x, "x_en": won_en(x), "x_ko": won_ko(x)} for x in
                                       [30000, 40000, 50000, 60000]], n=4, list_base="products"))
    ts.append(T("orders_per_month", "medium",
                ["How many orders were placed in each month of 2024?", "Show the number of orders per month."],
                ["2024년 월별 주문 건수를 알려줘.", "달마다 주문이 몇 건씩 들어왔는지 보여줘."],
                "SELECT strftime('%m', ordered_at) AS month, COUNT(*) FROM orders "
                "WHERE strftime('%Y', ordered_at) = '2024' GROUP BY month ORDER BY month"))
    ts.append(T("quarter_sales", "medium",
                "What was the total sales amount of orders placed in Q{qn} 2024?",
                "2024년 {qn}분기에 들어온 주문의 총 매출액은 얼마인가요?",
                f"SELECT SUM({ITEM_VALUE}) FROM order_items oi JOIN orders o ON oi.order_id = o.id "
                "WHERE o.ordered_at BETWEEN '{q0}' AND '{q1}'",
                slots=lambda db, rng: [{"qn": n, "q0": QUARTER_RANGE[n][0], "q1": QUARTER_RANGE[n][1]}
                                       for n in (1, 2, 3, 4)], n=4))
    ts.append(T("category_units_in_quarter", "medium",
                "How many units of {cat} products were sold in Q{qn} 2024?",
                "2024년 {qn}분기에 {cat} 카테고리 상품은 몇 개 팔렸나요?",
                "SELECT SUM(oi.quantity) FROM order_items oi JOIN orders o ON oi.order_id = o.id "
                "JOIN products p ON oi.product_id = p.id WHERE p.category = '{cat}' "
                "AND o.ordered_at BETWEEN '{q0}' AND '{q1}'",
                slots=lambda db, rng: cross(rng, category_slots(db, rng),
                                            [{"qn": n, "q0": QUARTER_RANGE[n][0], "q1": QUARTER_RANGE[n][1]}
                                             for n in (1, 2, 3, 4)]), n=10))
    ts.append(T("avg_order_value_by_status", "medium",
                "What is the average total amount of {status} orders?",
                "{status_ko} 주문의 평균 주문 금액은 얼마인가요?",
                f"SELECT AVG(total) FROM (SELECT o.id, SUM({ITEM_VALUE}) AS total FROM orders o "
                "JOIN order_items oi ON oi.order_id = o.id WHERE o.status = '{status}' GROUP BY o.id)",
                slots=status_slots, n=4))
    ts.append(T("avg_order_value", "medium",
                ["What is the average order value?", "On average, how much is one order worth?"],
                ["주문 한 건당 평균 금액은 얼마인가요?", "평균 주문 금액을 알려줘."],
                f"SELECT AVG(total) FROM (SELECT order_id, SUM(quantity * unit_price) AS total FROM order_items "
                "GROUP BY order_id)"))
    ts.append(T("status_in_city_count", "medium",
                "How many orders from users in {city} have the status {status}?",
                "{city_ko}에 사는 사용자들의 {status_ko} 주문은 몇 건인가요?",
                "SELECT COUNT(*) FROM orders o JOIN users u ON o.user_id = u.id "
                "WHERE u.city = '{city}' AND o.status = '{status}'",
                slots=lambda db, rng: cross(rng, city_slots(db, rng, 3), status_slots(db, rng)), n=10))
    ts.append(T("emails_with_status_order", "medium",
                "List the emails of users who have at least one {status} order.",
                "{status_ko} 주문이 한 건 이상 있는 사용자의 이메일을 보여줘.",
                "SELECT email FROM users u WHERE EXISTS "
                "(SELECT 1 FROM orders o WHERE o.user_id = u.id AND o.status = '{status}')",
                slots=status_slots, n=4, list_base="users"))
    ts.append(T("orders_between_dates", "medium",
                "List the orders placed between {d0} and {d1} (inclusive), with their dates, oldest first.",
                "{d0_ko}부터 {d1_ko}까지 들어온 주문의 번호와 주문일을 날짜순으로 보여줘.",
                "SELECT id, ordered_at FROM orders WHERE ordered_at BETWEEN '{d0}' AND '{d1}' ORDER BY ordered_at, id",
                slots=lambda db, rng: date_range_slots(rng), n=6, list_base="orders"))
    ts.append(T("latest_order_of_user", "medium",
                "When did {user} place their most recent order, and what is its status?",
                "{user}님의 가장 최근 주문 날짜와 주문 상태를 알려줘.",
                "SELECT o.ordered_at, o.status FROM orders o JOIN users u ON o.user_id = u.id "
                "WHERE u.name = '{user}' ORDER BY o.ordered_at DESC, o.id DESC LIMIT 1",
                slots=lambda db, rng: user_slots(db, rng, 2), n=8, list_base="orders", topk=0))
    ts.append(T("products_in_order", "medium",
                "Which products were in order {oid}, and in what quantities?",
                "{oid}번 주문에 담긴 상품 이름과 수량을 보여줘.",
                "SELECT p.name, oi.quantity FROM order_items oi JOIN products p ON oi.product_id = p.id "
                "WHERE oi.order_id = {oid}",
                slots=lambda db, rng: [{"oid": i} for i in rng.sample(
                    [r[0] for r in q(db, "SELECT order_id FROM order_items GROUP BY order_id "
                                         "HAVING COUNT(*) >= 2 ORDER BY order_id")], 8)],
                n=8, list_base="order_items"))
    ts.append(T("total_spent_by_user", "medium",
                "How much has {user} spent in total across all orders?",
                "{user}님이 지금까지 주문한 총 금액은 얼마인가요?",
                f"SELECT SUM({ITEM_VALUE}) FROM users u JOIN orders o ON o.user_id = u.id "
                "JOIN order_items oi ON oi.order_id = o.id WHERE u.name = '{user}'",
                slots=lambda db, rng: user_slots(db, rng, 1), n=10))
    ts.append(T("cities_with_more_than_n_users", "medium",
                "Which cities have more than {n} users? Show each city with its user count.",
                "사용자가 {n}명보다 많은 도시와 사용자 수를 알려줘.",
                "SELECT city, COUNT(*) FROM users GROUP BY city HAVING COUNT(*) > {n}",
                slots=lambda db, rng: [{"n": n} for n in [2, 3, 5, 10]], n=4, list_base="users"))
    ts.append(T("top_users_by_order_count", "medium",
                "Which {k} users placed the most orders? Show their names and order counts.",
                "주문을 가장 많이 한 사용자 {k}명의 이름과 주문 수를 보여줘.",
                "SELECT u.name, COUNT(*) AS order_count FROM users u JOIN orders o ON o.user_id = u.id "
                "GROUP BY u.id ORDER BY order_count DESC, u.id LIMIT {k}",
                slots=lambda db, rng: [{"k": k} for k in [3, 5, 10, 1, 2, 4, 6, 7]], n=4, list_base="users", topk=1))
    ts.append(T("avg_quantity_per_category", "medium",
                ["What is the average quantity per order line for each category?",
                 "For every category, how many units does an order line contain on average?"],
                ["카테고리별로 주문 항목당 평균 수량을 알려줘.", "각 카테고리의 주문 라인 평균 구매 수량은 얼마인가요?"],
                "SELECT p.category, AVG(oi.quantity) FROM order_items oi JOIN products p ON oi.product_id = p.id "
                "GROUP BY p.category"))
    ts.append(T("users_count_joined_year", "medium",
                "How many users joined in {y}?",
                "{y}년에 가입한 사용자는 몇 명인가요?",
                "SELECT COUNT(*) FROM users WHERE strftime('%Y', joined) = '{y}'",
                slots=lambda db, rng: [{"y": y} for y in ["2024", "2023", "2022"]], n=3))
    # ---- hard ----------------------------------------------------------------------------------------------
    ts.append(T("users_never_ordered", "hard",
                ["Which users have never placed an order?", "List the names of users without any orders."],
                ["한 번도 주문하지 않은 사용자의 이름을 보여줘.", "주문 내역이 전혀 없는 회원은 누구인가요?"],
                "SELECT name FROM users WHERE id NOT IN (SELECT user_id FROM orders)", list_base="users"))
    ts.append(T("users_never_ordered_count", "hard",
                "How many users have never placed an order?",
                ["주문을 한 번도 하지 않은 사용자는 몇 명인가요?"],
                "SELECT COUNT(*) FROM users WHERE id NOT IN (SELECT user_id FROM orders)"))
    ts.append(T("products_never_ordered", "hard",
                ["Which products have never been ordered?", "Find the products that appear in no order."],
                ["한 번도 주문된 적 없는 상품은 무엇인가요?", "주문 내역에 한 번도 등장하지 않은 상품 이름을 알려줘."],
                "SELECT p.name FROM products p WHERE NOT EXISTS "
                "(SELECT 1 FROM order_items oi WHERE oi.product_id = p.id)", list_base="products"))
    ts.append(T("products_above_avg_price", "hard",
                ["List the products that are more expensive than the average product price.",
                 "Which products are priced above the overall average price?"],
                ["평균 상품 가격보다 비싼 상품의 이름과 가격을 보여줘.", "전체 평균 가격보다 가격이 높은 상품은 무엇인가요?"],
                "SELECT name, price FROM products WHERE price > (SELECT AVG(price) FROM products)",
                list_base="products"))
    ts.append(T("products_above_category_avg", "hard",
                ["Which products are priced above the average price of their own category? Show the name, "
                 "category and price.",
                 "List each product that costs more than its category's average price, with its category and price."],
                ["같은 카테고리 평균 가격보다 비싼 상품의 이름, 카테고리, 가격을 보여줘.",
                 "자기 카테고리의 평균가보다 가격이 높은 상품을 카테고리, 가격과 함께 알려줘."],
                "SELECT p.name, p.category, p.price FROM products p WHERE p.price > "
                "(SELECT AVG(p2.price) FROM products p2 WHERE p2.category = p.category)", list_base="products"))
    ts.append(T("orders_value_above", "hard",
                "Which orders have a total amount greater than {x_en}? Show the order id and the amount.",
                "총 주문 금액이 {x_ko}을 넘는 주문의 번호와 금액을 보여줘.",
                f"SELECT oi.order_id, SUM({ITEM_VALUE}) AS total FROM order_items oi GROUP BY oi.order_id "
                "HAVING SUM(oi.quantity * oi.unit_price) > {x}",
                slots=lambda db, rng: [{"x": x, "x_en": won_en(x), "x_ko": won_ko(x)} for x in
                                       [300000, 500000, 700000, 400000, 600000, 800000]],
                n=6, list_base="orders"))
    ts.append(T("city_users_bought_category", "hard",
                "Which users from {city} have bought products in the {cat} category?",
                "{city_ko}에 사는 사용자 중 {cat} 카테고리 상품을 구매한 사람의 이름을 보여줘.",
                "SELECT DISTINCT u.name FROM users u JOIN orders o ON o.user_id = u.id "
                "JOIN order_items oi ON oi.order_id = o.id JOIN products p ON oi.product_id = p.id "
                "WHERE u.city = '{city}' AND p.category = '{cat}'",
                slots=lambda db, rng: cross(rng, city_slots(db, rng, 3), category_slots(db, rng)),
                n=10, list_base="users"))
    ts.append(T("buyers_of_product", "hard",
                "Who bought the '{product}'? List each buyer's name once.",
                "'{product}' 상품을 구매한 사용자 이름을 중복 없이 보여줘.",
                "SELECT DISTINCT u.name FROM users u JOIN orders o ON o.user_id = u.id "
                "JOIN order_items oi ON oi.order_id = o.id JOIN products p ON oi.product_id = p.id "
                "WHERE p.name = '{product}'",
                slots=lambda db, rng: product_slots(db, rng, True), n=12, list_base="users"))
    ts.append(T("distinct_customers_per_category", "hard",
                ["For each category, how many different customers have bought its products?",
                 "Count the distinct buyers of each product category."],
                ["카테고리별로 상품을 구매한 서로 다른 고객 수를 알려줘.", "각 카테고리 상품을 산 고객은 중복 없이 몇 명인가요?"],
                "SELECT p.category, COUNT(DISTINCT o.user_id) FROM orders o JOIN order_items oi ON oi.order_id = o.id "
                "JOIN products p ON oi.product_id = p.id GROUP BY p.category"))
    ts.append(T("top_city_by_spend", "hard",
                ["Which {k} cities' users spent the most in total? Show the city and the amount.",
                 "List the top {k} cities by total order amount of their users."],
                ["사용자들의 총 주문 금액이 가장 큰 도시 {k}곳과 금액을 보여줘.", "주문 금액 합계 기준 상위 {k}개 도시를 알려줘."],
                f"SELECT u.city, SUM({ITEM_VALUE}) AS total FROM users u JOIN orders o ON o.user_id = u.id "
                "JOIN order_items oi ON oi.order_id = o.id GROUP BY u.city ORDER BY total DESC, u.city LIMIT {k}",
                slots=lambda db, rng: [{"k": k} for k in [1, 3, 5, 2]], n=4, list_base="users", topk=1))
    ts.append(T("customers_above_avg_spend", "hard",
                ["Which customers have spent more than the average customer? Consider only users with orders.",
                 "List the users whose total order amount is above the average total per ordering user."],
                ["주문한 고객들의 평균 총 주문 금액보다 더 많이 쓴 고객의 이름을 보여줘.",
                 "고객별 총 주문 금액이 그 평균보다 큰 사용자는 누구인가요?"],
                "SELECT u.name FROM users u JOIN orders o ON o.user_id = u.id "
                "JOIN order_items oi ON oi.order_id = o.id "
                "GROUP BY u.id HAVING SUM(oi.quantity * oi.unit_price) > (SELECT AVG(total) FROM "
                "(SELECT o2.user_id, SUM(oi2.quantity * oi2.unit_price) AS total FROM orders o2 "
                "JOIN order_items oi2 ON oi2.order_id = o2.id GROUP BY o2.user_id))", list_base="users"))
    ts.append(T("users_all_quarters", "hard",
                ["Which users placed at least one order in every quarter of 2024?",
                 "Find the users who ordered in all four quarters of 2024."],
                ["2024년 네 분기 모두 주문한 사용자를 알려줘.", "2024년 매 분기마다 한 번 이상 주문한 회원의 이름을 보여줘."],
                "SELECT u.name FROM users u JOIN orders o ON o.user_id = u.id "
                "WHERE strftime('%Y', o.ordered_at) = '2024' GROUP BY u.id "
                "HAVING COUNT(DISTINCT (CAST(strftime('%m', o.ordered_at) AS INTEGER) + 2) / 3) = 4",
                list_base="users"))
    ts.append(T("best_month_revenue", "hard",
                ["Which month of 2024 had the highest total sales amount?",
                 "In which month of 2024 was the order amount the largest?"],
                ["2024년에 매출 합계가 가장 높았던 달은 언제인가요?", "2024년 중 총 주문 금액이 가장 컸던 월을 알려줘."],
                f"SELECT strftime('%m', o.ordered_at) AS month, SUM({ITEM_VALUE}) AS total FROM orders o "
                "JOIN order_items oi ON oi.order_id = o.id WHERE strftime('%Y', o.ordered_at) = '2024' "
                "GROUP BY month ORDER BY total DESC, month LIMIT 1",
                list_base="orders", topk=1))
    ts.append(T("users_bought_both_categories", "hard",
                "Which users have bought both {cat} and {cat2} products?",
                "{cat} 상품과 {cat2} 상품을 모두 구매한 사용자 이름을 보여줘.",
                "SELECT u.name FROM users u JOIN orders o ON o.user_id = u.id "
                "JOIN order_items oi ON oi.order_id = o.id "
                "JOIN products p ON oi.product_id = p.id WHERE p.category = '{cat}' INTERSECT "
                "SELECT u.name FROM users u JOIN orders o ON o.user_id = u.id "
                "JOIN order_items oi ON oi.order_id = o.id "
                "JOIN products p ON oi.product_id = p.id WHERE p.category = '{cat2}'",
                slots=lambda db, rng: shuffled(rng, [{"cat": a, "cat2": b} for a in PRODUCTS for b in PRODUCTS
                                                     if a < b]), n=10, list_base="users"))
    ts.append(T("city_users_no_order_in_month", "hard",
                "Which users from {city} did not place any order in {month_en} 2024?",
                "{city_ko}에 사는 사용자 중 2024년 {m}월에 주문하지 않은 사람은 누구인가요?",
                "SELECT name FROM users WHERE city = '{city}' AND id NOT IN (SELECT user_id FROM orders "
                "WHERE strftime('%Y-%m', ordered_at) = '2024-{mm}')",
                slots=lambda db, rng: cross(rng, city_slots(db, rng, 5), month_slots()), n=10, list_base="users"))
    ts.append(T("cancel_rate_per_city", "hard",
                ["For each city, what percentage of its users' orders were cancelled?",
                 "Show the cancellation rate (in percent) of orders per user city."],
                ["도시별로 주문 중 취소된 주문의 비율(%)을 알려줘.", "사용자 도시마다 취소 주문 비율을 퍼센트로 보여줘."],
                "SELECT u.city, 100.0 * SUM(CASE WHEN o.status = 'cancelled' THEN 1 ELSE 0 END) / COUNT(*) "
                "FROM orders o JOIN users u ON o.user_id = u.id GROUP BY u.city"))
    ts.append(T("first_order_per_user_in_city", "hard",
                "For each user in {city} who has ordered, show their name and the date of their first order.",
                "{city_ko}에 사는 사용자별로 이름과 첫 주문 날짜를 보여줘 (주문한 사용자만).",
                "SELECT u.name, MIN(o.ordered_at) FROM users u JOIN orders o ON o.user_id = u.id "
                "WHERE u.city = '{city}' GROUP BY u.id",
                slots=lambda db, rng: city_slots(db, rng, 3), n=6, list_base="users"))
    ts.append(T("repeat_buyers_of_product", "hard",
                "Which users ordered the '{product}' in more than one order?",
                "'{product}' 상품을 두 번 이상의 주문에서 구매한 사용자는 누구인가요?",
                "SELECT u.name FROM users u JOIN orders o ON o.user_id = u.id "
                "JOIN order_items oi ON oi.order_id = o.id "
                "JOIN products p ON oi.product_id = p.id WHERE p.name = '{product}' "
                "GROUP BY u.id HAVING COUNT(DISTINCT o.id) > 1",
                slots=lambda db, rng: product_slots(db, rng, True), n=6, list_base="users"))
    ts.append(T("category_revenue_share_in_city", "hard",
                "What is the total amount spent on each category by users living in {city}, largest first?",
                "{city_ko}에 사는 사용자들이 카테고리별로 쓴 금액 합계를 큰 순서대로 보여줘.",
                f"SELECT p.category, SUM({ITEM_VALUE}) AS total FROM users u JOIN orders o ON o.user_id = u.id "
                "JOIN order_items oi ON oi.order_id = o.id JOIN products p ON oi.product_id = p.id "
                "WHERE u.city = '{city}' GROUP BY p.category ORDER BY total DESC, p.category",
                slots=lambda db, rng: city_slots(db, rng, 3), n=6))
    return ts


def date_range_slots(rng):
    out = []
    for m in [2, 4, 5, 7, 8, 10, 11, 12]:
        d0 = datetime.date(2024, m, 1 + rng.randrange(20))
        d1 = d0 + datetime.timedelta(days=3 + rng.randrange(5))
        out.append({"d0": day(d0), "d1": day(d1),
                    "d0_ko": f"{d0.year}년 {d0.month}월 {d0.day}일", "d1_ko": f"{d1.year}년 {d1.month}월 {d1.day}일"})
    rng.shuffle(out)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Checking and generating
# ---------------------------------------------------------------------------------------------------------------

def table_counts(db):
    return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t, _ in TABLES}


def problem(db, t, sql, counts):
    """Why this gold query is not acceptable (None when it is)."""
    try:
        rows = db.execute(sql).fetchall()
    except sqlite3.Error as e:
        return f"error: {e}"
    if not rows:
        return "no rows"
    if any(all(v is None for v in r) for r in rows):
        return "a row of only NULLs"
    if len(rows) == 1 and len(rows[0]) == 1 and rows[0][0] in (0, None):
        return f"single value {rows[0][0]!r}"
    if t["list_base"] and len(rows) >= counts[t["list_base"]]:
        return f"returns {len(rows)} rows, the whole {t['list_base']} table"
    if t["topk"] is not None:
        stripped, _, k = sql.rpartition(" LIMIT ")
        if not k.isdigit():
            return "topk template whose query doesn't end in LIMIT k"
        k = int(k)
        full = db.execute(stripped).fetchall()
        if len(full) > k and full[k - 1][t["topk"]] == full[k][t["topk"]]:
            return f"tie at the LIMIT {k} cutoff"
    return None


def fill(template_text, slots):
    return template_text.format(**slots)


def generate(db, counts):
    records = []
    per_template = collections.OrderedDict()
    seen_questions = set()
    for t in templates():
        trng = random.Random(f"{SEED}-{t['name']}")  # per-template stream: editing one template moves no other
        cands = t["slots"](db, trng) if t["slots"] else [{}]
        valid = []  # (slots, sql) of the usable fillings, in order of preference
        for slots in cands:
            sql = fill(t["sql"], slots)
            why = problem(db, t, sql, counts)
            if why is None:
                valid.append((slots, sql))
            elif why.startswith("error") or not t["slots"]:
                sys.exit(f"template {t['name']}: {why}\n  {sql}")
            # else: this slot value makes a degenerate question; the next one is tried
        if not valid:
            sys.exit(f"template {t['name']}: no usable slot filling")
        first_lang = trng.randrange(2)
        for i in range(t["n"]):
            # Fillings are used in turn; when there are fewer than n, each is used again in the other language
            # (then with the next phrasing), so no question repeats.
            j, use = i % len(valid), i // len(valid)
            slots, sql = valid[j]
            lang = "en" if (j + first_lang + use) % 2 == 0 else "ko"
            phrasings = t[lang]
            question = fill(phrasings[(j // 2 + use // 2) % len(phrasings)], slots)
            if question in seen_questions:
                sys.exit(f"template {t['name']}: duplicate question {question!r}")
            seen_questions.add(question)
            records.append({"template": t["name"], "level": t["level"], "lang": lang,
                            "question": question, "query": sql})
        per_template[t["name"]] = (t["level"], t["n"])
    return records, per_template


def check_all(db, records, counts, by_name):
    """The independent final check: every record, run again."""
    questions = collections.Counter(r["question"] for r in records)
    dups = [q_ for q_, n in questions.items() if n > 1]
    if dups:
        sys.exit(f"duplicate questions: {dups[:5]}")
    sizes = []
    for r in records:
        why = problem(db, by_name[r["template"]], r["query"], counts)
        if why is not None:
            sys.exit(f"{r['id']}: {why}\n  {r['query']}")
        sizes.append(len(db.execute(r["query"]).fetchall()))
    return sizes


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--out", default=os.path.join(root, "examples", "ladder", "shop"))
    args = ap.parse_args()
    out = args.out

    rng = random.Random(SEED)
    users, products, orders, items = make_data(rng)
    sql_text = render_sql(users, products, orders, items)
    write(os.path.join(out, "shop.sql"), sql_text)

    db_path = os.path.join(out, "databases", DB_ID, f"{DB_ID}.sqlite")
    os.makedirs(os.path.dirname(db_path), exist_ok=True)
    for suffix in ("", "-journal", "-wal", "-shm"):
        if os.path.exists(db_path + suffix):
            os.remove(db_path + suffix)
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA foreign_keys = ON")
    db.executescript(sql_text)
    db.execute("VACUUM")
    db.close()

    write(os.path.join(out, "tables.json"), tables_json())

    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    if db.execute("PRAGMA foreign_key_check").fetchall():
        sys.exit("foreign key violations in the generated data")
    counts = table_counts(db)
    records, per_template = generate(db, counts)
    random.Random(f"{SEED}-shuffle").shuffle(records)
    for i, r in enumerate(records, 1):
        r["id"] = f"shop-{i:04d}"
    by_name = {t["name"]: t for t in templates()}
    sizes = check_all(db, records, counts, by_name)
    db.close()

    lines = [json.dumps({"id": r["id"], "db_id": DB_ID, "lang": r["lang"], "question": r["question"],
                         "query": r["query"]}, ensure_ascii=False) for r in records]
    write(os.path.join(out, "questions.jsonl"), "\n".join(lines) + "\n")

    # Summary ---------------------------------------------------------------------------------------------------
    langs = collections.Counter(r["lang"] for r in records)
    levels = collections.Counter(r["level"] for r in records)
    print(f"wrote {out}")
    print("rows per table: " + ", ".join(f"{t} {n}" for t, n in counts.items()))
    print(f"database: {os.path.getsize(db_path)} bytes; shop.sql: {len(sql_text.encode())} bytes")
    print(f"records: {len(records)} (en {langs['en']}, ko {langs['ko']}); "
          + ", ".join(f"{lv} {levels[lv]}" for lv in ("easy", "medium", "hard")))
    print(f"result rows per gold query: min {min(sizes)}, max {max(sizes)}")
    print(f"templates: {len(per_template)}")
    for name, (level, n) in per_template.items():
        print(f"  {name:36s} {level:6s} {n}")


if __name__ == "__main__":
    main()
