SELECT 'a;b' /* c; */ -- d
, $x$ ; $x$, E'\'' FROM t