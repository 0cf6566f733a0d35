"""Delivering an audience plan to TikTok: audience lookup and creation (`audience`), partner-segment mappings
(`deliver`, `wire`) and customer-file uploads (`customer_file`, `customer_file_parts`)."""
