/** @jsxImportSource hono/jsx */
import { Hono } from "hono";
import type { ConsoleEnv } from "./kit.ts";

/** The teams section of the console. */
export const teamPages = new Hono<ConsoleEnv>();
