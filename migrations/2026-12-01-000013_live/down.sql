DROP TABLE ws_connections;
DROP TABLE ws_tickets;
