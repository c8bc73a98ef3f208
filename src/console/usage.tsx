/** @jsxImportSource hono/jsx */
import { Hono } from "hono";
import type { ConsoleEnv } from "./kit.ts";

/** The usage section of the console. */
export const usagePages = new Hono<ConsoleEnv>();
