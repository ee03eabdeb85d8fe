DROP TABLE user_blocks;
DROP TABLE attachment_chunks;
DROP TABLE attachments;
DROP TABLE messages;
DROP TABLE conversation_members;
DROP TABLE conversations;
DROP TABLE data_keys;
