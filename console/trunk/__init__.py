"""trunk"""
