-- A tiny shop database for examples/agent/sql.toml and the tests (loaded into a temporary SQLite database).
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    city TEXT NOT NULL,
    joined DATE NOT NULL
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    product TEXT NOT NULL,
    amount REAL NOT NULL,
    ordered DATE NOT NULL
);
INSERT INTO users VALUES
    (1, 'Kim Minji', 'Seoul', '2024-01-15'),
    (2, 'Lee Junho', 'Busan', '2024-02-03'),
    (3, 'Park Soyeon', 'Seoul', '2024-03-21'),
    (4, 'Choi Hyun', 'Incheon', '2024-04-09');
INSERT INTO orders VALUES
    (1, 1, 'keyboard', 89.0, '2024-05-01'),
    (2, 1, 'mouse', 25.5, '2024-05-03'),
    (3, 2, 'monitor', 210.0, '2024-05-04'),
    (4, 3, 'keyboard', 89.0, '2024-05-10'),
    (5, 3, 'headset', 59.9, '2024-06-01'),
    (6, 3, 'mouse', 25.5, '2024-06-02');
